"""SIIT models (Gupta et al. 2024, InterpBench): transformers of realistic shape trained by strict
interchange-intervention training to implement a high-level model's circuit in chosen heads and MLPs, and nothing else.

    alignment.py      which low-level head or MLP implements each high-level one; the low-level shape
    interventions.py  writer outputs by hook, and forwards with some of them replaced
    training.py       the behaviour, IIT and strict losses and the training loop
    measures.py       accuracy, interchange-intervention accuracy (IIA) and strict IIA
    weights.py        the committed weights of each trained model, saved with its alignment

docs/siit.md describes the recipe and the trained models.
"""
