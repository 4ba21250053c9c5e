//! DragonFly HAMMER ioctls (placeholder being written).
