"""The integration edge: inbound platform webhooks, the inbox, outbound delivery."""
