-- wrk script: POST one raw 1 KiB message per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["RMQ-Tag"] = "bench"
wrk.body = string.rep("x", 1024)
