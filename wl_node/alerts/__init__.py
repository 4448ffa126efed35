"""The CP's imbalance alerts for this WL's pairs, shown to the WL's own apps (``StorefrontService/WatchPairAlerts``)."""
