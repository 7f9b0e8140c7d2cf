"""Thin kopf handlers that wire observation, planning and actuation together."""
