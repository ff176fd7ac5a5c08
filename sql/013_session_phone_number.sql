-- 013_session_phone_number.sql: GET /session filters on phoneNumberId and
-- phoneNumberIdAny (issue 15), which 005_sdk_compat accepted and ignored
-- while there were no phone numbers. Sessions show phoneNumberId
-- (sessions.phone_number_id, 011_phone_numbers.sql).

alter type callhq.list_query
    add attribute phone_number_id   uuid,
    add attribute phone_number_ids  uuid[];
