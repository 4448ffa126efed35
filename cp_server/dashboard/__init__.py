"""The executive dashboard: a read-only web app served by the CP (balance of trade, risk heatmap, GMV and
conversion, alerts, operations), reached through one-time login links and short sessions."""
