"""Energy, carbon and grid-event sources: one module per provider behind one small protocol."""
