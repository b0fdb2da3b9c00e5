#!/bin/sh
# Runs once when the PostgreSQL volume is created (docker-entrypoint-initdb.d): the role the
# service runs as, which does not own the tables (see manage.py grant_runtime_role). Its
# password comes from the app_db_password secret (docker-compose.yml).
set -eu
app_password="$(cat "${APP_DB_PASSWORD_FILE:?APP_DB_PASSWORD_FILE is not set}")"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v app_password="$app_password" <<'SQL'
CREATE ROLE case_evidence_app LOGIN PASSWORD :'app_password';
GRANT CONNECT ON DATABASE case_evidence TO case_evidence_app;
SQL
