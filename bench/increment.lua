-- wrk script: POST /increment with an empty body (by = 1).
wrk.method = "POST"
wrk.body = ""
wrk.headers["Content-Type"] = "application/json"
