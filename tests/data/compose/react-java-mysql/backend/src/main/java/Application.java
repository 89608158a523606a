class Application {}
