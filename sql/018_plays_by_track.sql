-- 018_plays_by_track.sql: how often a user played a track, by index.
--
-- A search adds to each of its 200 best tracks the caller's like and plays,
-- each asked of the database by the track (one index probe a track,
-- whatever the caller's likes and plays add up to: a user with 5,000 likes
-- made every search read all of them before, a third of a search's time at
-- a million tracks). Likes have their (user_id, track_id) index; plays had
-- one by user and time and one by track, so a probe read every play of a
-- popular track, by anyone, or every play of the user.

CREATE INDEX idx_playback_history_user_track ON playback_history (user_id, track_id);
