"""The "Post a first incident" block `make run` prints and the README shows.

``CURL_EXAMPLE.format(intake=..., sandbox=...)`` gives it for a running stack;
``tests/e2e/test_make_run.py`` checks the README holds the same block and runs
it. The incident is discovered "now" (``date -u``), so its 72-hour deadline is
ahead of whoever runs it; step 4 waits (``wait_for=1``) for what it shows.
"""

CURL_EXAMPLE = """\
# make run's local keys: an operator who writes, and a second person who approves
OPERATOR='Authorization: Bearer ak_localoperator.local-operator-secret'
APPROVER='Authorization: Bearer ak_localapprover.local-approver-secret'
# 1. load two people into the subject directory
curl -s -w '\\n' -X POST {intake}/v1/subjects -H "$OPERATOR" \\
  -H 'Content-Type: application/json' -d '[
  {{"external_id": "cust-1", "name": "김민준", "phone": "010-1234-5678",
    "tags": ["breach-2026-11"]}},
  {{"external_id": "cust-2", "name": "Jane Doe", "phone": "+821098765432", "locale": "en",
    "channels": ["sms"], "tags": ["breach-2026-11"]}}
]'
# 2. post an incident, discovered now (date -u), and its first notice to everyone
#    tagged breach-2026-11
NOTICE=$(curl -s -X POST {intake}/v1/incidents -H "$OPERATOR" \\
  -H 'Content-Type: application/json' -d '{{
  "title": "회원 정보 유출", "severity": "high",
  "discovered_at": "'"$(date -u +%Y-%m-%dT%H:%M:%SZ)"'",
  "contact": "고객센터 1588-0000",
  "notice": {{"body": "이름과 전화번호가 유출되었습니다.",
             "translations": {{"en": {{"body": "Your name and phone number were exposed."}}}}}},
  "audience": {{"filter": {{"tags_any": ["breach-2026-11"]}}}}
}}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["notice_id"])')
# 3. nothing is sent until a second person approves the notice
curl -s -w '\\n' -X POST {intake}/v1/notices/$NOTICE/approve -H "$APPROVER"
# 4. what the sandbox received, each shown once it has come (waiting up to 30 s):
#    KakaoTalk for cust-1, SMS for cust-2, and for staff the notice's summary,
#    posted in its Slack thread once the notice completes
curl -s -w '\\n' '{sandbox}/_sandbox/kakao/messages?wait_for=1'
curl -s -w '\\n' '{sandbox}/_sandbox/sms/messages?wait_for=1'
curl -s -w '\\n' '{sandbox}/_sandbox/slack/messages?event_type=alimi_notice_summary&wait_for=1'
"""
