-- EWS push intake: inbox items kept by `POST /hooks/ews/{tenant}` (source 'ews'), and the last watermark an
-- EWS subscription received (NULL for Graph subscriptions and for an EWS subscription that has received
-- nothing yet).

ALTER TABLE subscriptions ADD COLUMN watermark TEXT;

-- The inline CHECK of 0002 got PostgreSQL's generated name `inbox_source_check`.
ALTER TABLE inbox DROP CONSTRAINT inbox_source_check;
ALTER TABLE inbox ADD CONSTRAINT inbox_source_check
    CHECK (source IN ('graph', 'graph-lifecycle', 'topdesk', 'ews'));
