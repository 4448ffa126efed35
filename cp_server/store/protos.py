"""Proto helpers of the CP store's records."""

from __future__ import annotations

import datetime as dt

from google.protobuf import timestamp_pb2


def timestamp(when: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts
