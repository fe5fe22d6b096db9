"""Real SIP peers on loopback for tests and the demo: sipp callers (RFC 2833 / SIP INFO DTMF) and pyVoIP
agent softphones. Imported only by tests and `ivr run --demo`, never by the server's call path."""
