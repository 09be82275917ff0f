"""digits: federated softmax regression on scikit-learn's bundled digits."""
