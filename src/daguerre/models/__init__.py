"""Model backends behind one protocol. This package imports nothing else of Daguerre."""
