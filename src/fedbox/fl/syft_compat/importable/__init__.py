"""The folder fedbox puts on ``sys.path`` so that ``import syft_flwr`` finds its stand-in."""
