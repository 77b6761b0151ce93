"""Single sign-on with the Department's OpenID Connect provider: authorization code flow with PKCE, ID-token
validation (joserfc), and the mapping of provider groups to local roles. See controller/README.md."""
