"""A lead score for one contact of the demo app.

Runs in the custom code runner (domain.md §9): `ctx.http` is already authenticated for the
connection and limited to the app; only allow-listed modules may be imported.
"""

import re

FREE_MAIL = re.compile(r"@(gmail|yahoo|hotmail|outlook)\.", re.IGNORECASE)


def run(input, ctx):
    contact = ctx.http.get("/contacts/" + input["id"]).json()
    score = 0
    if contact.get("company"):
        score += 40
    if contact.get("email") and not FREE_MAIL.search(contact["email"]):
        score += 30
    if contact.get("first_name") and contact.get("last_name"):
        score += 20
    if contact.get("phone"):
        score += 10
    print("scored", contact["id"], score)
    return {"id": contact["id"], "score": score}
