"""fbsyft: a Flower test app in the style of syft-flwr's example projects."""
