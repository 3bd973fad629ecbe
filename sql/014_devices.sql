-- 014_devices.sql: players (a jukebox, a browser tab, a phone) that report
-- in with POST /api/system/devices/heartbeat; staff list them with what
-- they play and when they were last heard from.

CREATE TABLE player_devices (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- the account the device plays under
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- the client's own stable id for itself, unique per account
    client_id        text NOT NULL CHECK (client_id ~ '^[A-Za-z0-9._:-]{8,64}$'),
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    kind             text NOT NULL DEFAULT 'other'
                     CHECK (kind IN ('jukebox', 'browser', 'mobile', 'desktop',
                                     'speaker', 'other')),
    state            text NOT NULL DEFAULT 'idle'
                     CHECK (state IN ('playing', 'paused', 'stopped', 'idle')),
    track_id         uuid REFERENCES tracks (id) ON DELETE SET NULL,
    position_ms      integer CHECK (position_ms >= 0),
    volume           smallint CHECK (volume BETWEEN 0 AND 100),
    -- the schedule entry the device follows, if it plays the schedule
    schedule_entry_id uuid REFERENCES schedule_entries (id) ON DELETE SET NULL,
    user_agent       text CHECK (char_length(user_agent) <= 300),
    remote_addr      text CHECK (char_length(remote_addr) <= 64),
    heartbeats       bigint NOT NULL DEFAULT 1,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX idx_player_devices_client ON player_devices (user_id, client_id);
CREATE INDEX idx_player_devices_seen ON player_devices (last_seen_at DESC);
CREATE INDEX idx_player_devices_track ON player_devices (track_id) WHERE track_id IS NOT NULL;
CREATE INDEX idx_player_devices_entry ON player_devices (schedule_entry_id)
    WHERE schedule_entry_id IS NOT NULL;
