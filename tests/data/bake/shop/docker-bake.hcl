variable "TAG" {
  default = "dev"
}

variable "REGISTRY" {
  default = "registry.example.com/shop"
}

variable "NO_CACHE_API" {
  default = false
}

group "default" {
  targets = ["api", "web", "workers"]
}

group "ci" {
  targets = ["default", "tools"]
}

target "_base" {
  args = {
    BASE_IMAGE = "alpine:3.20"
    TAG = TAG
  }
  contexts = {
    shared = "./libs/shared"
  }
}

target "api" {
  inherits = ["_base"]
  context = "services/api"
  dockerfile = "docker/Dockerfile"
  target = "runtime"
  args = {
    RELEASE = "${TAG}-${upper(REGISTRY)}"
    PORT = 8080
  }
  tags = ["${REGISTRY}/api:${TAG}"]
  no-cache = NO_CACHE_API
}

target "web" {
  inherits = ["_base"]
  context = "./services/web"
  args = {
    NODE_ENV = "production"
  }
  contexts = {
    base = "docker-image://node:20-alpine"
  }
  no-cache-filter = ["deps"]
}

target "workers" {
  matrix = {
    queue = ["mail", "billing"]
  }
  name = "worker-${queue}"
  inherits = ["_base"]
  context = "services/api"
  dockerfile = "docker/Dockerfile"
  target = "worker"
  args = {
    QUEUE = queue
  }
}

target "tools" {
  dockerfile-inline = <<EOT
FROM alpine:3.20
COPY libs/shared/ /shared/
EOT
}
