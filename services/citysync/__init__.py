"""citysync: the de-identified, replayable feed for the city's public data platform."""
