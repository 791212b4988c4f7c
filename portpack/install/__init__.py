"""Writing one environment: the destination (the only writer) and what it writes."""
