"""The engine: actors, step scheduling with deadlines, outcome capture and verdicts."""
