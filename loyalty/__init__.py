"""The member domain: stores, members, the points ledger, tiers, rewards, cases and care."""
