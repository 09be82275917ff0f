"""fbprobe: a Flower test app for fedbox that reports what a client process sees."""
