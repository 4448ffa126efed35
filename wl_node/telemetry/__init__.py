"""Durable, ordered, signed shipping of the node's ledger and enforcement events to the CP."""

from .queue import enqueue, enqueue_sync

__all__ = ["enqueue", "enqueue_sync"]
