"""Board games solved exactly, whose solutions are the ground truth for networks trained to play them."""
