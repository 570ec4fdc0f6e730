-- wrk script: one etcd v3 put through the HTTP/JSON gateway (key "bench").
wrk.method = "POST"
wrk.body = '{"key": "YmVuY2g=", "value": "MQ=="}'
wrk.headers["Content-Type"] = "application/json"
