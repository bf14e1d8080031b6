"""Identity: users, sign-up and login, sessions, second factors, KYC tiers, staff roles."""
