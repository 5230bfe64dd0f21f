"""The console's screens (one a module); ``base`` holds what they share."""
