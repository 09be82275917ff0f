"""analytics: federated histograms with Flower ``query`` messages."""
