"""Alerts: rules from the config (`alerts:`), checked by the server that drives the fleet, sent to
the config's `channels:` (webhook, SMTP) once when they start, again every `renotify`, and once
when they clear; silences (API, CLI) hold them back until they expire.

- `conditions.py`: what each rule's condition finds now, as alerts keyed by what they are about;
- `channels.py`: sending a round of news to a webhook or by mail;
- `alerter.py`: the loop that compares each round with the last and decides what to send.
"""
