// Where the API lives. Empty: the same origin (behind Nginx, or `make run` serving the frontend itself).
// Set it to e.g. "https://api.example.com" when the API is on another origin.
window.BACKEND_API_BASE_URL = "";
