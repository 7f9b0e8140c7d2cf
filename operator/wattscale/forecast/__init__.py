"""Pure demand forecasting (Holt / seasonal EWMA) over the planning horizon. No I/O."""
