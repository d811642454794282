-- The one definition of a failed step: error status, an error type (error.type or an
-- exception event), or an HTTP status of 400 or more.
status_code = 'error' OR error_type IS NOT NULL OR http_status >= 400
