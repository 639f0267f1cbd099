"""Tasks on project-trained transformers whose circuits are verified by path patching rather than compiled."""
