-- 003_settings_defaults.sql
-- Default system_settings rows. ON CONFLICT DO NOTHING keeps any value an
-- operator has already set.

INSERT INTO system_settings (key, value, description) VALUES
    ('registration_open',
     'true',
     'Whether new (non-anonymous) accounts may register.'),
    ('storage_quota_bytes',
     '1073741824',
     'Per-user upload quota in bytes, compared with users.storage_used_bytes (default 1 GiB).'),
    ('max_playlists_per_user',
     '500',
     'Maximum number of playlists a single user may own.'),
    ('max_playlist_entries',
     '10000',
     'Maximum number of entries (rows in playlist_tracks) per playlist.'),
    ('fallback_playlist_id',
     'null',
     'UUID (JSON string) of the playlist the scheduler plays when no schedule entry is active, or null for none.'),
    ('default_timezone',
     '"UTC"',
     'IANA time zone used for new schedule entries and users without a timezone preference.'),
    ('anonymous_account_inactive_days',
     '90',
     'Anonymous accounts with no activity for this many days may be purged.')
ON CONFLICT (key) DO NOTHING;
