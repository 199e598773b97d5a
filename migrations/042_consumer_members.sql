-- What each consumer-group member last said about itself (running, or waiting on a dependency since
-- when, its partitions), written every second by the member. The same reports go to Redis; the API's
-- health reads both, so a member's state shows while either store is down. No tenant data: written
-- and read by the connecting role, not hashinsight_app.
CREATE TABLE IF NOT EXISTS consumer_members (
  consumer_group text NOT NULL,
  member text NOT NULL,
  report jsonb NOT NULL,
  reported_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, member)
);
