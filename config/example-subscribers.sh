#!/bin/sh
# Adds three demo subscribers to a running demo daemon (config/example.json).
# Usage: config/example-subscribers.sh [BASE_URL]
set -eu
url=${1:-http://127.0.0.1:8080}
token=demo-admin-token-change-me
add() {
  curl -sS -X POST "$url/v1/subscribers" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "$1"
  echo
}
add '{"name":"Ana","phone":"+1 213 555 0101","email":"ana@example.org","language":"es-MX","groups":["eastside-responders"]}'
add '{"name":"Ben","phone":"(213) 555-0102","language":"en","groups":["eastside-responders","la-legal-observers"]}'
add '{"name":"Chris","email":"chris@example.org","language":"en","groups":["eastside-responders"],"channels":["email"]}'
