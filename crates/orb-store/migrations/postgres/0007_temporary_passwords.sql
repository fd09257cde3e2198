-- A password someone else set (an admin's invitation, `orb user add` / `reset-password`) is temporary: its
-- owner chooses their own at the next login before the portal shows anything else.
ALTER TABLE users ADD COLUMN password_temporary BOOLEAN NOT NULL DEFAULT FALSE;
