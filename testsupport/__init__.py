"""What the test suites of every app share, and nothing the API runs: loopback fakes of
Groq and Supabase Auth, the ASGI driver, data factories, private PostgreSQL and Redis
servers, and the error-envelope assertion."""
