"""Reactions to the event history: notifications to Kafka, auto top-ups, billing cycles.

Each follower reads the event store's notification log from its own tracked position, so a
slow or failing one (a broker outage) never blocks a deduction and catches up where it left off.
"""
