"""On-call: schedules that say who is on duty, and group alarms that must be acknowledged.

`config` is imported by omnigate.config and so imports nothing of ours but `sms/`
and `routing.match`; the rest is wired by the gateway.
"""
