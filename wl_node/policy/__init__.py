"""The node's policy agent and the applied policy view every other component reads."""
