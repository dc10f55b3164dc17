"""A room: several console processes behind one address (`app.py --room-processes N`)."""
