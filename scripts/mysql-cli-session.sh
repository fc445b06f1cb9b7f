#!/usr/bin/env bash
# mysql-cli-session.sh: a scripted "interactive" session of the mariadb command-line client.
#
# It feeds a fixed list of statements to `mariadb` on stdin, the way a person would type them, and
# prints everything the client prints (results in table form, \G output, the ERROR line of a
# statement that fails) on stdout. Run it once against MariaDB and once through `scalestack
# mysqlproxy`: the two outputs must be the same apart from connection ids (internal/e2e's TestMariaDBCLI
# does exactly that).
#
# Usage:
#   scripts/mysql-cli-session.sh --host H --port P --user U --password-file F [--database D]
#
# The database (default e2e_cli) must hold a table `items (id INT PRIMARY KEY, name VARCHAR(40))`;
# the session changes nothing in it (its only INSERT is rolled back).
set -euo pipefail

host=127.0.0.1 port="" user="" password_file="" database=e2e_cli
while [[ $# -gt 0 ]]; do
	case $1 in
	--host) host=${2:?--host needs a value}; shift ;;
	--port) port=${2:?--port needs a value}; shift ;;
	--user) user=${2:?--user needs a value}; shift ;;
	--password-file) password_file=${2:?--password-file needs a value}; shift ;;
	--database) database=${2:?--database needs a value}; shift ;;
	-h | --help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "mysql-cli-session.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[[ -n ${port} && -n ${user} && -n ${password_file} ]] || {
	echo "mysql-cli-session.sh: --port, --user and --password-file are required" >&2
	exit 2
}
[[ ${database} =~ ^[A-Za-z0-9_]+$ ]] || { echo "mysql-cli-session.sh: bad database name" >&2; exit 2; }
client=$(command -v mariadb || command -v mysql) || { echo "mysql-cli-session.sh: no mariadb client" >&2; exit 2; }

# The password goes through a private defaults file, not the command line (where ps would show it).
defaults=$(mktemp)
trap 'rm -f "${defaults}"' EXIT
chmod 600 "${defaults}"
printf '[client]\npassword=%s\n' "$(head -n1 "${password_file}")" >"${defaults}"

# --force keeps going after the failing statement, --table prints tables as an interactive session
# does, --unbuffered keeps stdout and stderr in statement order, --skip-auto-rehash avoids the
# completion queries an interactive start-up would send.
"${client}" --defaults-file="${defaults}" --protocol=TCP --host="${host}" --port="${port}" --user="${user}" \
	--force --table --unbuffered --skip-auto-rehash --skip-pager --show-warnings 2>&1 <<SQL
SELECT CONNECTION_ID() AS connection_id;
SHOW DATABASES;
USE ${database};
SELECT DATABASE() AS current_database;
SHOW TABLES;
SELECT id, name FROM items ORDER BY id;
BEGIN;
INSERT INTO items (id, name) VALUES (100, 'inserted inside a transaction');
SELECT COUNT(*) AS rows_inside_transaction, @@in_transaction AS in_transaction FROM items;
ROLLBACK;
SELECT COUNT(*) AS rows_after_rollback, @@in_transaction AS in_transaction FROM items;
SELEC name FROM items;
SELECT 'still connected after the error' AS status;
SELECT id, name, LENGTH(name) AS name_length, UPPER(name) AS shout FROM items WHERE id = 2\G
SET @greeting = 'hello from the session';
SELECT @greeting AS greeting, @@autocommit AS autocommit\G
SELECT CAST('abc' AS UNSIGNED) AS truncated_number;
SHOW COLUMNS FROM items;
SQL
