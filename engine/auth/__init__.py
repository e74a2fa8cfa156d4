"""Authentication: tokens of platform admins, workspace admins, customers and console users."""
