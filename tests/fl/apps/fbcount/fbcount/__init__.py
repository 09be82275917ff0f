"""fbcount: a Flower test app for fedbox."""
