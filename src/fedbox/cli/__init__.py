"""Layer 9: the ``fedbox`` command, the only place that prints and wires layers together."""
