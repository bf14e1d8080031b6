"""Risk assessment before money moves (fraud rules and anomaly scoring arrive later)."""
