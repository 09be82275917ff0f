"""Strategies syft-flwr projects use."""

from .fedavg import FedAvgWithModelSaving

__all__ = ["FedAvgWithModelSaving"]
