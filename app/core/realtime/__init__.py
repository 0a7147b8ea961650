"""③ The push connection: the Centrifugo codec, the client and its clock watch."""
